//! Socket helpers: placeholder, being written.
