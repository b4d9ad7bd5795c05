//! host-local IPAM (placeholder).
