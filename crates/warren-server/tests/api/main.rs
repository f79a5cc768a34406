//! Integration tests of the control plane: the real server on `127.0.0.1:0`, real HTTP
//! (reqwest), a real store. Every test runs twice, against SQLite (a fresh file in a temp dir)
//! and against PostgreSQL (a fresh, uniquely named database, dropped afterwards) when
//! `WARREN_TEST_DATABASE_URL` is set; without it the Postgres variant prints why it skips.

mod helpers;

mod api_keys;
mod auth;
mod errors;
mod hosts;
mod openapi;
mod sandboxes;
mod teams;
