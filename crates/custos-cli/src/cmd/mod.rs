//! One module per subcommand; each has an `Args` struct and a `run`.

pub mod audit;
pub mod demo;
pub mod dock;
pub mod export;
pub mod hash;
pub mod keygen;
pub mod ledger;
pub mod operator;
pub mod retention;
pub mod token;
pub mod verify;
