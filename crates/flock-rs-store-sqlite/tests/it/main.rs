//! Integration tests of the SQLite store, on real files in temporary directories:
//! the conformance suite every store passes, group commit under concurrent
//! publishers, and the files themselves (creation, WAL, errors, closing).

mod conformance;
mod files;
mod group_commit;
mod support;
