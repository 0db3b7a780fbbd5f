//! herald's integration tests: one binary, one file per feature, all through public interfaces.
//! Set `HERALD_TEST_BACKEND=postgres` to run them on PostgreSQL.

mod support;

mod admin_commands;
mod architecture;
mod attachments;
mod business_account;
mod command_transactions;
mod commands_doc;
mod console_binary;
mod console_flow;
mod crash;
mod csv_import;
mod drips;
mod fuzz;
mod hardening;
mod interactive;
mod light_queued_rows_migration;
mod media;
mod one_spelling;
mod one_spelling_migration;
mod operator_metrics;
mod paged_resolution;
mod pause_resume;
mod post_actions;
mod preview_matches_send;
mod quality_guard;
mod recurring;
mod report_export;
mod retention;
mod scale_out;
mod scheduling;
mod send_rules;
mod shutdown;
mod statistics;
mod telegram;
mod triggers;
mod unknown_outcomes;
mod webhook_limits;
mod whatsapp_client;
mod whatsapp_errors;
mod whatsapp_run;
