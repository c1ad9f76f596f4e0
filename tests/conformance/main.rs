//! Conformance: real clients (litmus, cadaver, rclone, curl) against a real `kura serve`
//! on 127.0.0.1. Each test starts its own server with a fresh data dir.

mod acme;
mod admin_api;
mod bad_input;
mod clients;
mod common;
mod core_rights;
mod crash;
mod doc_examples;
mod first_hour;
mod hardening;
mod hardening_auth;
mod hardening_fuzz;
mod hardening_net;
mod http_semantics;
mod litmus;
mod locks;
mod locks_attacks;
mod mounts;
mod peer_suites;
mod permissions;
mod quotas;
mod replays;
mod replication;
mod s3_clients;
mod s3_cors;
mod s3_errors;
mod s3_prefixes;
mod s3_public;
mod s3_versioning;
mod shares;
mod streaming;
mod tls;
mod tree_races;
mod users;
mod versions;
