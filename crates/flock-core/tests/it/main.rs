//! Integration tests of flock-core: the store conformance suite against
//! `InMemoryStore`.

mod memory_store_conformance;
