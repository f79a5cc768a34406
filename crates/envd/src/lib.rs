//! envd: the in-sandbox agent (placeholder).
