-- Bifrost's PostgreSQL roles: least privilege for each process (infra/README.md, "Security zones").
--
--   psql -v ON_ERROR_STOP=1 -U postgres -d bifrost -f infra/database/roles.sql
--
-- Run by an administrator, connected to Bifrost's database; it may be run again (it only adds
-- what is missing and sets the grants again). Three group roles hold the privileges and four
-- login roles are members of them:
--
--   <prefix>_owner     NOLOGIN  owns the schema and every table: DDL (the migrations)
--   <prefix>_readwrite NOLOGIN  rows only: SELECT, INSERT, UPDATE, DELETE; sequences
--   <prefix>_readonly  NOLOGIN  SELECT only
--   <prefix>_migrator  LOGIN    `bifrost init` / migrations; acts as _owner (SET ROLE on login)
--   <prefix>_api       LOGIN    the API processes (member of _readwrite)
--   <prefix>_worker    LOGIN    the Prefect workers' flow runs (member of _readwrite)
--   <prefix>_reader    LOGIN    reports, read replicas' users, support staff (member of _readonly)
--
-- Variables (psql -v name=value), all optional:
--   prefix                    role name prefix (default bifrost)
--   migrator_password, api_password, worker_password, reader_password
--                             passwords of the login roles (none is set when absent: use a
--                             password file, certificates or IAM authentication instead)

\if :{?prefix}
\else
\set prefix bifrost
\endif
\set owner :prefix _owner
\set readwrite :prefix _readwrite
\set readonly :prefix _readonly
\set migrator :prefix _migrator
\set api :prefix _api
\set worker :prefix _worker
\set reader :prefix _reader

BEGIN;
-- Quiet on a second run ("already a member of role").
SET LOCAL client_min_messages = warning;

-- CREATE ROLE has no IF NOT EXISTS: each is made only when missing (\gexec runs the rows).
SELECT format('CREATE ROLE %I NOLOGIN', name)
FROM unnest(ARRAY[:'owner', :'readwrite', :'readonly']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name)
\gexec
SELECT format('CREATE ROLE %I LOGIN', name)
FROM unnest(ARRAY[:'migrator', :'api', :'worker', :'reader']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name)
\gexec

GRANT :"owner" TO :"migrator";
GRANT :"readwrite" TO :"api", :"worker";
GRANT :"readonly" TO :"reader";
-- Tables the migrations make belong to the owner group, not to whoever logged in to run them.
ALTER ROLE :"migrator" SET role = :'owner';
-- A runaway query or a forgotten transaction must not hold locks for ever.
ALTER ROLE :"api" SET statement_timeout = '30s';
ALTER ROLE :"api" SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE :"reader" SET statement_timeout = '5min';
ALTER ROLE :"reader" SET default_transaction_read_only = on;

\if :{?migrator_password}
ALTER ROLE :"migrator" PASSWORD :'migrator_password';
\endif
\if :{?api_password}
ALTER ROLE :"api" PASSWORD :'api_password';
\endif
\if :{?worker_password}
ALTER ROLE :"worker" PASSWORD :'worker_password';
\endif
\if :{?reader_password}
ALTER ROLE :"reader" PASSWORD :'reader_password';
\endif

-- Only Bifrost's roles may connect; nobody but the owner may create objects.
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"owner", :"readwrite", :"readonly";
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"owner";
GRANT USAGE ON SCHEMA public TO :"readwrite", :"readonly";

-- What exists now (a database migrated before the roles were made) ...
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'owner')
FROM pg_tables WHERE schemaname = 'public' AND tableowner <> :'owner'
\gexec
SELECT format('ALTER SEQUENCE public.%I OWNER TO %I', sequencename, :'owner')
FROM pg_sequences
WHERE schemaname = 'public' AND sequenceowner <> :'owner'
  -- an identity or serial column's sequence follows its table's owner
  AND NOT EXISTS (
    SELECT FROM pg_depend d
    JOIN pg_class s ON s.oid = d.objid
    WHERE s.relname = sequencename AND s.relnamespace = 'public'::regnamespace
      AND d.deptype IN ('a', 'i')
  )
\gexec
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"readwrite";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"readwrite";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"readonly";

-- ... and what the migrations make from now on.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"readwrite";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"readwrite";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT ON TABLES TO :"readonly";

COMMIT;
