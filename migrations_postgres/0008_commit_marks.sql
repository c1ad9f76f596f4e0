-- PostgreSQL twin of migrations/0008_commit_marks.sql.
CREATE TABLE commit_marks (
    owner TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    seq TEXT COLLATE "C" NOT NULL
);
