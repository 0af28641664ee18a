//! custos-core's integration tests (one test binary): the formats against
//! their specifications and standard tools, the Merkle tree against RFC 9162
//! vectors and properties, and the bundle verifier against every doctoring
//! `bundle_support` can do.

mod bundle_support;

mod bundle_standard_tools;
mod bundle_verify;
mod bundle_witnessed;
mod canonical_bytes;
mod formats_canonical;
mod formats_dsse;
mod formats_entry;
mod formats_manifest;
mod merkle_props;
mod merkle_vectors;
mod note_checkpoint;
mod note_format;
mod tiles_props;
mod witness_formats;
