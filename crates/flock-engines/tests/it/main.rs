//! Integration tests of flock-engines. The LLM engine's run against a real HTTP
//! server on 127.0.0.1 (`llm::mock`), so they need the `llm-mock` feature, which
//! `cargo xtask test` enables through the workspace.

#[cfg(feature = "llm-mock")]
mod llm;
