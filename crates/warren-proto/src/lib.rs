//! warren-proto (placeholder: filled by its issue).
