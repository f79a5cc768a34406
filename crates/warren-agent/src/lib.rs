//! warren-agent (placeholder: filled by its issue).
