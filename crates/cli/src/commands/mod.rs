//! The subcommands of `more`, each written once: the task-generic ones (`train`, `eval`, `bench`,
//! `reproduce`) take a task from `crate::tasks`; `attack`, `classify` and `wbc` have their own data; `bfv`
//! quantizes a model for BFV; `import` reads ONNX networks; `challenge`
//! talks to a server.

pub mod attack;
pub mod bench;
pub mod bfv;
pub mod bfv_batch;
pub mod bfv_wbc;
pub mod challenge;
pub mod classify;
pub mod eval;
pub mod import;
pub mod reproduce;
pub mod train;
pub mod wbc;
