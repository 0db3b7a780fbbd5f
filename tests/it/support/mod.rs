#![allow(dead_code)]
//! Test helpers: a database per test on the backend under test, an app on the console channel
//! with a clock the test moves, and fake channel servers.

pub mod console_app;
pub mod db;
pub mod fake_graph;
pub mod fake_telegram;
pub mod herald_process;
pub mod multipart;
pub mod raw_http;
pub mod run_app;
