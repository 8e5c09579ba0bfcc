//! End-to-end tests across crates: the real release app, driven the way a person uses it.
//! The CLI's workflows are tested in `crates/cli/tests`.

mod commands;
mod window;
