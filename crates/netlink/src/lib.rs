//! Kernel operations (placeholder).
