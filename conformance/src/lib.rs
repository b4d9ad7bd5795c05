//! Test lab (placeholder).
