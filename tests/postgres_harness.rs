//! The PostgreSQL test harness (tests/common/postgres.rs) itself: a private server starts,
//! answers SQL, stops (and then refuses), restarts on the same data, and `shared_url` gives
//! fresh databases.

mod common;

use std::time::Instant;

use common::postgres::{self, PgServer};

#[test]
fn a_private_server_starts_stops_and_restarts_on_its_data() {
    let started = Instant::now();
    let mut pg = PgServer::start();
    eprintln!("PgServer::start took {:?}", started.elapsed());
    assert!(pg.url("app").contains("dbname=app"), "{}", pg.url("app"));

    pg.create_database("app");
    assert_eq!(pg.psql("app", "select 1+1").trim(), "2");
    pg.psql("app", "create table t (v int); insert into t values (7);");

    pg.stop();
    assert!(!pg.is_running());
    let refused = pg.try_psql("app", "select 1");
    assert!(
        refused.is_err(),
        "psql answered a stopped server: {refused:?}"
    );

    let restarted = Instant::now();
    pg.restart();
    eprintln!("PgServer::restart took {:?}", restarted.elapsed());
    assert_eq!(pg.psql("app", "select 1+1").trim(), "2");
    assert_eq!(
        pg.psql("app", "select v from t").trim(),
        "7",
        "the data survives"
    );
}

#[test]
fn shared_url_gives_a_fresh_database_each_time() {
    let a = postgres::shared_url();
    let b = postgres::shared_url();
    assert_ne!(a, b);
    postgres::psql_url(&a, "create table only_in_a (v int)");
    assert_eq!(
        postgres::psql_url(
            &b,
            "select count(*) from pg_tables where tablename = 'only_in_a'"
        )
        .trim(),
        "0"
    );
    assert_eq!(postgres::psql_url(&a, "select 40+2").trim(), "42");
}
