-- Roles of the contract, created if missing and without passwords (the operator sets them):
--   auditgate_owner   owns every audit object and cannot log in, so no session holds the owner's
--                     inherent right to alter or drop the tables;
--   auditgate_writer  the gateway: INSERT, and the head of its own chain through audit.chain_head();
--   auditgate_reader  reports and security queries: SELECT only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditgate_owner') THEN
        CREATE ROLE auditgate_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditgate_writer') THEN
        CREATE ROLE auditgate_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditgate_reader') THEN
        CREATE ROLE auditgate_reader LOGIN;
    END IF;
END
$$;

ALTER SCHEMA audit OWNER TO auditgate_owner;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO auditgate_writer, auditgate_reader;
GRANT SELECT ON audit.schema_migrations TO auditgate_reader;
