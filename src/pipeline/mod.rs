//! Moving bytes.
