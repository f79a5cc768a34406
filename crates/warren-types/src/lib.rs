//! warren-types (placeholder: filled by its issue).
