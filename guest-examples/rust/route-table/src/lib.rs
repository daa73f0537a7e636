//! route-table (skeleton).
