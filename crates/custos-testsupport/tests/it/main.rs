//! custos-testsupport's own tests (one test binary): the Garage fixture
//! works, and the workspace keeps its stated invariants (`tidy`).

mod garage;
mod tidy;
