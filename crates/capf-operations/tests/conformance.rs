//! The store conformance suite on the in-memory store.

capf_operations::store_conformance_tests!(capf_operations::MemoryStore::new());
