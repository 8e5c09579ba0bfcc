//! Model files, one per architecture family, written for training: composite ops that
//! backpropagate, hidden states and logits at every position, LoRA-able projections.

pub mod llama;
pub mod qllama;
pub(crate) mod train_block;
