//! warren-server (placeholder: filled by its issue).
