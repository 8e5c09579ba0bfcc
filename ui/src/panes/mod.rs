//! One file per pane; each reads the shared stores of [`crate::state`] and calls the back end
//! only through [`crate::ipc`].

pub mod arena;
pub mod brainstorm;
pub mod data;
pub mod deploy;
pub mod evaluate;
pub mod history;
pub mod monitor;
pub mod overview;
pub mod playground;
pub mod settings;
pub mod traces;
pub mod train;
