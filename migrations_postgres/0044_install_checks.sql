-- PostgreSQL twin of migrations/0044_install_checks.sql.
CREATE TABLE install_checks (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);
