//! poll(2) backend: placeholder, being written.
