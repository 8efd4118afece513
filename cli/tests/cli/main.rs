//! End-to-end tests of the `refrain` binary: the commands a user types, checked on their output.

mod batch;
mod critic;
mod dataset;
mod evaluate;
mod generate;
mod guard;
mod inspect;
mod train;
