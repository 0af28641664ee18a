//! DESIGN.md's invariants under the failures of the field, with separate
//! processes and independent checkers.
