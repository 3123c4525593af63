-- Roles of the contract, created if missing and without passwords (the operator sets them):
--   auditgate_owner   owns every audit object and cannot log in, so no session holds the owner's
--                     inherent right to alter or drop the tables;
--   auditgate_writer  the gateway: INSERT, and the head of its own chain through audit.chain_head();
--   auditgate_reader  reports and security queries: SELECT only.
-- Roles are shared by every database of the cluster: two databases migrated at once may race to
-- create them, so "already exists" is not an error.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['auditgate_owner', 'auditgate_writer', 'auditgate_reader'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name);
        BEGIN
            EXECUTE format('CREATE ROLE %I %s', role_name, CASE WHEN role_name = 'auditgate_owner' THEN 'NOLOGIN' ELSE 'LOGIN' END);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

ALTER SCHEMA audit OWNER TO auditgate_owner;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO auditgate_writer, auditgate_reader;
GRANT SELECT ON audit.schema_migrations TO auditgate_reader;
