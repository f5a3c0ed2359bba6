//! Shared helpers of the flock-rs examples.
