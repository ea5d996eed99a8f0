-- pg_dump --inserts of a fresh install by pg-boss 12.38.0 on PostgreSQL 15 (schema renamed to __SCHEMA__; instance and queue_stats rows removed)
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;
CREATE SCHEMA __SCHEMA__;
CREATE TYPE __SCHEMA__.job_state AS ENUM (
    'created',
    'retry',
    'active',
    'completed',
    'cancelled',
    'failed'
);
CREATE FUNCTION __SCHEMA__.create_queue(queue_name text, options jsonb) RETURNS void
    LANGUAGE plpgsql
    AS $_$
    DECLARE
      tablename varchar := CASE WHEN options->>'partition' = 'true'
                            THEN 'j' || encode(sha224(queue_name::bytea), 'hex')
                            ELSE 'job_common'
                            END;
      queue_created_on timestamptz;
    BEGIN
      WITH q as (
        INSERT INTO __SCHEMA__.queue (
          name,
          policy,
          retry_limit,
          retry_delay,
          retry_backoff,
          retry_delay_max,
          expire_seconds,
          retention_seconds,
          deletion_seconds,
          warning_queued,
          dead_letter,
          partition,
          table_name,
          heartbeat_seconds,
          notify,
          created_on,
          updated_on
        )
        VALUES (
          queue_name,
          options->>'policy',
          COALESCE((options->>'retryLimit')::int, 2),
          COALESCE((options->>'retryDelay')::int, 0),
          COALESCE((options->>'retryBackoff')::bool, false),
          (options->>'retryDelayMax')::int,
          COALESCE((options->>'expireInSeconds')::int, 900),
          COALESCE((options->>'retentionSeconds')::int, 1209600),
          COALESCE((options->>'deleteAfterSeconds')::int, 604800),
          COALESCE((options->>'warningQueueSize')::int, 0),
          options->>'deadLetter',
          COALESCE((options->>'partition')::bool, false),
          tablename,
          (options->>'heartbeatSeconds')::int,
          COALESCE((options->>'notify')::bool, false),
          __SCHEMA__.job_now(),
          __SCHEMA__.job_now()
        )
        ON CONFLICT DO NOTHING
        RETURNING created_on
      )
      SELECT created_on into queue_created_on from q;
      IF queue_created_on IS NULL OR options->>'partition' IS DISTINCT FROM 'true' THEN
        RETURN;
      END IF;
      EXECUTE format('CREATE TABLE __SCHEMA__.%I (LIKE __SCHEMA__.job INCLUDING DEFAULTS)', tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$ALTER TABLE __SCHEMA__.job ADD PRIMARY KEY (name, id)$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$ALTER TABLE __SCHEMA__.job ADD CONSTRAINT q_fkey FOREIGN KEY (name) REFERENCES __SCHEMA__.queue (name) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$ALTER TABLE __SCHEMA__.job ADD CONSTRAINT dlq_fkey FOREIGN KEY (dead_letter) REFERENCES __SCHEMA__.queue (name) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i11 ON __SCHEMA__.job (name, priority DESC, created_on, start_after) WHERE state < 'active' AND NOT blocked$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i4 ON __SCHEMA__.job (name, singleton_on, COALESCE(singleton_key, '')) WHERE state <> 'cancelled' AND singleton_on IS NOT NULL$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i7 ON __SCHEMA__.job (name, group_id) WHERE state = 'active' AND group_id IS NOT NULL$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i9 ON __SCHEMA__.job (name, id) WHERE blocking AND state = 'completed'$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i12 ON __SCHEMA__.job (source_root_id) WHERE source_root_id IS NOT NULL$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i13 ON __SCHEMA__.job (name, singleton_key) WHERE state = 'created' AND upsert_by_key$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i14 ON __SCHEMA__.job (name, state, blocked, start_after) WHERE state IN ('created', 'retry', 'active', 'failed')$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i15 ON __SCHEMA__.job (name, created_on)$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i16 ON __SCHEMA__.job (name, completed_on) WHERE completed_on IS NOT NULL$cmd$, tablename);
      EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i17 ON __SCHEMA__.job (name, singleton_key, created_on) WHERE state < 'active' AND singleton_key IS NOT NULL$cmd$, tablename);
      IF options->>'policy' = 'short' THEN
        EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i1 ON __SCHEMA__.job (name, COALESCE(singleton_key, '')) WHERE state = 'created' AND policy = 'short'$cmd$, tablename);
      ELSIF options->>'policy' = 'singleton' THEN
        EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i2 ON __SCHEMA__.job (name, COALESCE(singleton_key, '')) WHERE state = 'active' AND policy = 'singleton'$cmd$, tablename);
      ELSIF options->>'policy' = 'stately' THEN
        EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i3 ON __SCHEMA__.job (name, state, COALESCE(singleton_key, '')) WHERE state <= 'active' AND policy = 'stately'$cmd$, tablename);
      ELSIF options->>'policy' = 'exclusive' THEN
        EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i6 ON __SCHEMA__.job (name, COALESCE(singleton_key, '')) WHERE state <= 'active' AND policy = 'exclusive'$cmd$, tablename);
      ELSIF options->>'policy' = 'key_strict_fifo' THEN
        EXECUTE __SCHEMA__.job_table_format($cmd$CREATE UNIQUE INDEX job_i8 ON __SCHEMA__.job (name, singleton_key) WHERE state IN ('active', 'retry', 'failed') AND policy = 'key_strict_fifo'$cmd$, tablename);
        EXECUTE __SCHEMA__.job_table_format($cmd$CREATE INDEX job_i10 ON __SCHEMA__.job (name, singleton_key, state DESC, created_on, id) INCLUDE (start_after) WHERE state < 'active' AND NOT blocked AND policy = 'key_strict_fifo'$cmd$, tablename);
        EXECUTE __SCHEMA__.job_table_format($cmd$ALTER TABLE __SCHEMA__.job ADD CONSTRAINT job_key_strict_fifo_singleton_key_check CHECK (NOT (policy = 'key_strict_fifo' AND singleton_key IS NULL))$cmd$, tablename);
      END IF;
      EXECUTE format('ALTER TABLE __SCHEMA__.%I ADD CONSTRAINT cjc CHECK (name=%L)', tablename, queue_name);
      EXECUTE format('ALTER TABLE __SCHEMA__.job ATTACH PARTITION __SCHEMA__.%I FOR VALUES IN (%L)', tablename, queue_name);
    END;
    $_$;
CREATE FUNCTION __SCHEMA__.delete_queue(queue_name text) RETURNS void
    LANGUAGE plpgsql
    AS $$
    DECLARE
      v_table varchar;
      v_partition bool;
    BEGIN
      
      SELECT table_name, partition
      FROM __SCHEMA__.queue
      WHERE name = queue_name
      INTO v_table, v_partition;
      IF v_partition THEN
        EXECUTE format('DROP TABLE IF EXISTS __SCHEMA__.%I', v_table);
      ELSE
        EXECUTE format('DELETE FROM __SCHEMA__.%I WHERE name = %L', v_table, queue_name);
      END IF;
    
      DELETE FROM __SCHEMA__.queue WHERE name = queue_name;
    END;
    $$;
CREATE FUNCTION __SCHEMA__.job_now() RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    AS $$
      SELECT pg_catalog.now();
    $$;
CREATE FUNCTION __SCHEMA__.job_table_format(command text, table_name text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $_$
      SELECT format(
        regexp_replace(
          regexp_replace(command, '\.job\y', '.%1$I', 'g'),
          '\yjob_i(\d+)', '%1$s_i\1', 'g'
        ),
        table_name
      );
    $_$;
CREATE FUNCTION __SCHEMA__.job_table_run(command text, tbl_name text DEFAULT NULL::text, queue_name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql
    AS $$
    DECLARE
      tbl RECORD;
    BEGIN
      IF queue_name IS NOT NULL THEN
        SELECT table_name INTO tbl_name FROM __SCHEMA__.queue WHERE name = queue_name;
      END IF;
      IF tbl_name IS NOT NULL THEN
        EXECUTE __SCHEMA__.job_table_format(command, tbl_name);
        RETURN;
      END IF;
      EXECUTE __SCHEMA__.job_table_format(command, 'job_common');
      FOR tbl IN SELECT table_name FROM __SCHEMA__.queue WHERE partition = true
      LOOP
        EXECUTE __SCHEMA__.job_table_format(command, tbl.table_name);
      END LOOP;
    END;
    $$;
CREATE FUNCTION __SCHEMA__.job_table_run_async(command_name text, version integer, command text, tbl_name text DEFAULT NULL::text, queue_name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql
    AS $$
    BEGIN
      IF queue_name IS NOT NULL THEN
        SELECT table_name INTO tbl_name FROM __SCHEMA__.queue WHERE name = queue_name;
      END IF;
      IF tbl_name IS NOT NULL THEN
        INSERT INTO __SCHEMA__.bam (name, version, status, queue, table_name, command)
        VALUES (
          command_name,
          version,
          'pending',
          queue_name,
          tbl_name,
          __SCHEMA__.job_table_format(command, tbl_name)
        );
        RETURN;
      END IF;
      INSERT INTO __SCHEMA__.bam (name, version, status, queue, table_name, command)
      SELECT
        command_name,
        version,
        'pending',
        NULL,
        'job_common',
        __SCHEMA__.job_table_format(command, 'job_common')
      UNION ALL
      SELECT
        command_name,
        version,
        'pending',
        queue.name,
        queue.table_name,
        __SCHEMA__.job_table_format(command, queue.table_name)
      FROM __SCHEMA__.queue
      WHERE partition = true;
    END;
    $$;
SET default_tablespace = '';
SET default_table_access_method = heap;
CREATE TABLE __SCHEMA__.bam (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    queue text,
    table_name text NOT NULL,
    command text NOT NULL,
    error text,
    created_on timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    started_on timestamp with time zone,
    completed_on timestamp with time zone
);
CREATE TABLE __SCHEMA__.instance (
    id uuid NOT NULL,
    name text,
    host text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    node_version text NOT NULL,
    application_name text,
    heartbeat_seconds integer NOT NULL,
    supervise boolean NOT NULL,
    schedule boolean NOT NULL,
    migrate boolean NOT NULL,
    persist_queue_stats boolean NOT NULL,
    persist_warnings boolean NOT NULL,
    pool_max integer,
    pool_total integer,
    pool_idle integer,
    pool_waiting integer,
    workers jsonb DEFAULT '[]'::jsonb NOT NULL,
    metrics jsonb,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    crash_restarts integer DEFAULT 0 NOT NULL,
    crash_restarts_since timestamp with time zone,
    started_on timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_on timestamp with time zone DEFAULT now() NOT NULL,
    stopped_on timestamp with time zone
);
CREATE TABLE __SCHEMA__.job (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    data jsonb,
    state __SCHEMA__.job_state DEFAULT 'created'::__SCHEMA__.job_state NOT NULL,
    retry_limit integer DEFAULT 2 NOT NULL,
    retry_count integer DEFAULT 0 NOT NULL,
    retry_delay integer DEFAULT 0 NOT NULL,
    retry_backoff boolean DEFAULT false NOT NULL,
    retry_delay_max integer,
    expire_seconds integer DEFAULT 900 NOT NULL,
    deletion_seconds integer DEFAULT 604800 NOT NULL,
    singleton_key text,
    singleton_on timestamp without time zone,
    group_id text,
    group_tier text,
    start_after timestamp with time zone DEFAULT now() NOT NULL,
    created_on timestamp with time zone DEFAULT now() NOT NULL,
    started_on timestamp with time zone,
    completed_on timestamp with time zone,
    keep_until timestamp with time zone DEFAULT (now() + '336:00:00'::interval) NOT NULL,
    output jsonb,
    dead_letter text,
    policy text,
    heartbeat_on timestamp with time zone,
    heartbeat_seconds integer,
    blocked boolean DEFAULT false NOT NULL,
    blocking boolean DEFAULT false NOT NULL,
    pending_dependencies integer DEFAULT 0 NOT NULL,
    source_name text,
    source_id uuid,
    source_created_on timestamp with time zone,
    source_retry_count integer,
    source_output jsonb,
    source_root_id uuid,
    trace_context jsonb,
    upsert_by_key boolean
)
PARTITION BY LIST (name);
CREATE TABLE __SCHEMA__.job_common (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    data jsonb,
    state __SCHEMA__.job_state DEFAULT 'created'::__SCHEMA__.job_state NOT NULL,
    retry_limit integer DEFAULT 2 NOT NULL,
    retry_count integer DEFAULT 0 NOT NULL,
    retry_delay integer DEFAULT 0 NOT NULL,
    retry_backoff boolean DEFAULT false NOT NULL,
    retry_delay_max integer,
    expire_seconds integer DEFAULT 900 NOT NULL,
    deletion_seconds integer DEFAULT 604800 NOT NULL,
    singleton_key text,
    singleton_on timestamp without time zone,
    group_id text,
    group_tier text,
    start_after timestamp with time zone DEFAULT now() NOT NULL,
    created_on timestamp with time zone DEFAULT now() NOT NULL,
    started_on timestamp with time zone,
    completed_on timestamp with time zone,
    keep_until timestamp with time zone DEFAULT (now() + '336:00:00'::interval) NOT NULL,
    output jsonb,
    dead_letter text,
    policy text,
    heartbeat_on timestamp with time zone,
    heartbeat_seconds integer,
    blocked boolean DEFAULT false NOT NULL,
    blocking boolean DEFAULT false NOT NULL,
    pending_dependencies integer DEFAULT 0 NOT NULL,
    source_name text,
    source_id uuid,
    source_created_on timestamp with time zone,
    source_retry_count integer,
    source_output jsonb,
    source_root_id uuid,
    trace_context jsonb,
    upsert_by_key boolean,
    CONSTRAINT job_key_strict_fifo_singleton_key_check CHECK ((NOT ((policy = 'key_strict_fifo'::text) AND (singleton_key IS NULL))))
);
CREATE TABLE __SCHEMA__.job_dependency (
    child_name text NOT NULL,
    child_id uuid NOT NULL,
    parent_name text NOT NULL,
    parent_id uuid NOT NULL
);
CREATE TABLE __SCHEMA__.queue (
    name text NOT NULL,
    policy text NOT NULL,
    retry_limit integer NOT NULL,
    retry_delay integer NOT NULL,
    retry_backoff boolean NOT NULL,
    retry_delay_max integer,
    expire_seconds integer NOT NULL,
    retention_seconds integer NOT NULL,
    deletion_seconds integer NOT NULL,
    dead_letter text,
    partition boolean NOT NULL,
    table_name text NOT NULL,
    deferred_count integer DEFAULT 0 NOT NULL,
    blocked_count integer DEFAULT 0 NOT NULL,
    queued_count integer DEFAULT 0 NOT NULL,
    ready_count integer DEFAULT 0 NOT NULL,
    warning_queued integer DEFAULT 0 NOT NULL,
    active_count integer DEFAULT 0 NOT NULL,
    failed_count integer DEFAULT 0 NOT NULL,
    total_count integer DEFAULT 0 NOT NULL,
    retained_count integer,
    retained_on timestamp with time zone,
    created_delta integer DEFAULT 0 NOT NULL,
    completed_delta integer DEFAULT 0 NOT NULL,
    failed_delta integer DEFAULT 0 NOT NULL,
    delta_on timestamp with time zone,
    delta_seconds integer,
    wait_bins integer[],
    run_bins integer[],
    ready_oldest_seconds integer,
    ready_history integer[] DEFAULT '{}'::integer[] NOT NULL,
    heartbeat_seconds integer,
    notify boolean DEFAULT false NOT NULL,
    singletons_active text[],
    monitor_claim_on timestamp with time zone,
    monitor_on timestamp with time zone,
    maintain_on timestamp with time zone,
    created_on timestamp with time zone DEFAULT now() NOT NULL,
    updated_on timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT queue_check CHECK ((dead_letter IS DISTINCT FROM name))
);
CREATE TABLE __SCHEMA__.queue_stats (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    deferred_count integer DEFAULT 0 NOT NULL,
    queued_count integer DEFAULT 0 NOT NULL,
    ready_count integer DEFAULT 0 NOT NULL,
    active_count integer DEFAULT 0 NOT NULL,
    failed_count integer DEFAULT 0 NOT NULL,
    total_count integer DEFAULT 0 NOT NULL,
    created_delta integer,
    completed_delta integer,
    failed_delta integer,
    delta_seconds integer,
    delta_on timestamp with time zone,
    wait_bins integer[],
    run_bins integer[],
    ready_oldest_seconds integer,
    captured_on timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (captured_on);
CREATE TABLE __SCHEMA__.queue_stats_20261123 (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    deferred_count integer DEFAULT 0 NOT NULL,
    queued_count integer DEFAULT 0 NOT NULL,
    ready_count integer DEFAULT 0 NOT NULL,
    active_count integer DEFAULT 0 NOT NULL,
    failed_count integer DEFAULT 0 NOT NULL,
    total_count integer DEFAULT 0 NOT NULL,
    created_delta integer,
    completed_delta integer,
    failed_delta integer,
    delta_seconds integer,
    delta_on timestamp with time zone,
    wait_bins integer[],
    run_bins integer[],
    ready_oldest_seconds integer,
    captured_on timestamp with time zone DEFAULT now() NOT NULL
);
CREATE TABLE __SCHEMA__.queue_stats_20261124 (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    deferred_count integer DEFAULT 0 NOT NULL,
    queued_count integer DEFAULT 0 NOT NULL,
    ready_count integer DEFAULT 0 NOT NULL,
    active_count integer DEFAULT 0 NOT NULL,
    failed_count integer DEFAULT 0 NOT NULL,
    total_count integer DEFAULT 0 NOT NULL,
    created_delta integer,
    completed_delta integer,
    failed_delta integer,
    delta_seconds integer,
    delta_on timestamp with time zone,
    wait_bins integer[],
    run_bins integer[],
    ready_oldest_seconds integer,
    captured_on timestamp with time zone DEFAULT now() NOT NULL
);
CREATE TABLE __SCHEMA__.schedule (
    name text NOT NULL,
    key text DEFAULT ''::text NOT NULL,
    kind text DEFAULT 'cron'::text NOT NULL,
    cron text NOT NULL,
    timezone text DEFAULT 'UTC'::text,
    data jsonb,
    options jsonb,
    created_on timestamp with time zone DEFAULT now() NOT NULL,
    updated_on timestamp with time zone DEFAULT now() NOT NULL,
    last_job_id uuid,
    CONSTRAINT schedule_kind_check CHECK ((kind = ANY (ARRAY['cron'::text, 'rrule'::text])))
);
CREATE TABLE __SCHEMA__.subscription (
    event text NOT NULL,
    name text NOT NULL,
    created_on timestamp with time zone DEFAULT now() NOT NULL,
    updated_on timestamp with time zone DEFAULT now() NOT NULL
);
CREATE TABLE __SCHEMA__.version (
    version integer NOT NULL,
    cron_on timestamp with time zone,
    bam_on timestamp with time zone,
    flow_on timestamp with time zone,
    reindex_on timestamp with time zone,
    monitor_backoff_on timestamp with time zone
);
CREATE TABLE __SCHEMA__.warning (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    type text NOT NULL,
    message text NOT NULL,
    data jsonb,
    created_on timestamp with time zone DEFAULT now() NOT NULL
);
ALTER TABLE ONLY __SCHEMA__.job ATTACH PARTITION __SCHEMA__.job_common DEFAULT;
ALTER TABLE ONLY __SCHEMA__.queue_stats ATTACH PARTITION __SCHEMA__.queue_stats_20261123 FOR VALUES FROM ('2026-11-23 00:00:00+00') TO ('2026-11-24 00:00:00+00');
ALTER TABLE ONLY __SCHEMA__.queue_stats ATTACH PARTITION __SCHEMA__.queue_stats_20261124 FOR VALUES FROM ('2026-11-24 00:00:00+00') TO ('2026-11-25 00:00:00+00');
INSERT INTO __SCHEMA__.version VALUES (46, NULL, '2026-11-23 06:14:30.1909+00', NULL, NULL, NULL);
ALTER TABLE ONLY __SCHEMA__.bam
    ADD CONSTRAINT bam_pkey PRIMARY KEY (id);
ALTER TABLE ONLY __SCHEMA__.instance
    ADD CONSTRAINT instance_pkey PRIMARY KEY (id);
ALTER TABLE ONLY __SCHEMA__.job
    ADD CONSTRAINT job_pkey PRIMARY KEY (name, id);
ALTER TABLE ONLY __SCHEMA__.job_common
    ADD CONSTRAINT job_common_pkey PRIMARY KEY (name, id);
ALTER TABLE ONLY __SCHEMA__.job_dependency
    ADD CONSTRAINT job_dependency_pkey PRIMARY KEY (child_name, child_id, parent_name, parent_id);
ALTER TABLE ONLY __SCHEMA__.queue
    ADD CONSTRAINT queue_pkey PRIMARY KEY (name);
ALTER TABLE ONLY __SCHEMA__.queue_stats
    ADD CONSTRAINT queue_stats_pkey PRIMARY KEY (id, captured_on);
ALTER TABLE ONLY __SCHEMA__.queue_stats_20261123
    ADD CONSTRAINT queue_stats_20261123_pkey PRIMARY KEY (id, captured_on);
ALTER TABLE ONLY __SCHEMA__.queue_stats_20261124
    ADD CONSTRAINT queue_stats_20261124_pkey PRIMARY KEY (id, captured_on);
ALTER TABLE ONLY __SCHEMA__.schedule
    ADD CONSTRAINT schedule_pkey PRIMARY KEY (name, key);
ALTER TABLE ONLY __SCHEMA__.subscription
    ADD CONSTRAINT subscription_pkey PRIMARY KEY (event, name);
ALTER TABLE ONLY __SCHEMA__.version
    ADD CONSTRAINT version_pkey PRIMARY KEY (version);
ALTER TABLE ONLY __SCHEMA__.warning
    ADD CONSTRAINT warning_pkey PRIMARY KEY (id);
CREATE UNIQUE INDEX job_common_i1 ON __SCHEMA__.job_common USING btree (name, COALESCE(singleton_key, ''::text)) WHERE ((state = 'created'::__SCHEMA__.job_state) AND (policy = 'short'::text));
CREATE INDEX job_common_i10 ON __SCHEMA__.job_common USING btree (name, singleton_key, state DESC, created_on, id) INCLUDE (start_after) WHERE ((state < 'active'::__SCHEMA__.job_state) AND (NOT blocked) AND (policy = 'key_strict_fifo'::text));
CREATE INDEX job_common_i11 ON __SCHEMA__.job_common USING btree (name, priority DESC, created_on, start_after) WHERE ((state < 'active'::__SCHEMA__.job_state) AND (NOT blocked));
CREATE INDEX job_common_i12 ON __SCHEMA__.job_common USING btree (source_root_id) WHERE (source_root_id IS NOT NULL);
CREATE UNIQUE INDEX job_common_i13 ON __SCHEMA__.job_common USING btree (name, singleton_key) WHERE ((state = 'created'::__SCHEMA__.job_state) AND upsert_by_key);
CREATE INDEX job_common_i14 ON __SCHEMA__.job_common USING btree (name, state, blocked, start_after) WHERE (state = ANY (ARRAY['created'::__SCHEMA__.job_state, 'retry'::__SCHEMA__.job_state, 'active'::__SCHEMA__.job_state, 'failed'::__SCHEMA__.job_state]));
CREATE INDEX job_common_i15 ON __SCHEMA__.job_common USING btree (name, created_on);
CREATE INDEX job_common_i16 ON __SCHEMA__.job_common USING btree (name, completed_on) WHERE (completed_on IS NOT NULL);
CREATE INDEX job_common_i17 ON __SCHEMA__.job_common USING btree (name, singleton_key, created_on) WHERE ((state < 'active'::__SCHEMA__.job_state) AND (singleton_key IS NOT NULL));
CREATE UNIQUE INDEX job_common_i2 ON __SCHEMA__.job_common USING btree (name, COALESCE(singleton_key, ''::text)) WHERE ((state = 'active'::__SCHEMA__.job_state) AND (policy = 'singleton'::text));
CREATE UNIQUE INDEX job_common_i3 ON __SCHEMA__.job_common USING btree (name, state, COALESCE(singleton_key, ''::text)) WHERE ((state <= 'active'::__SCHEMA__.job_state) AND (policy = 'stately'::text));
CREATE UNIQUE INDEX job_common_i4 ON __SCHEMA__.job_common USING btree (name, singleton_on, COALESCE(singleton_key, ''::text)) WHERE ((state <> 'cancelled'::__SCHEMA__.job_state) AND (singleton_on IS NOT NULL));
CREATE UNIQUE INDEX job_common_i6 ON __SCHEMA__.job_common USING btree (name, COALESCE(singleton_key, ''::text)) WHERE ((state <= 'active'::__SCHEMA__.job_state) AND (policy = 'exclusive'::text));
CREATE INDEX job_common_i7 ON __SCHEMA__.job_common USING btree (name, group_id) WHERE ((state = 'active'::__SCHEMA__.job_state) AND (group_id IS NOT NULL));
CREATE UNIQUE INDEX job_common_i8 ON __SCHEMA__.job_common USING btree (name, singleton_key) WHERE ((state = ANY (ARRAY['active'::__SCHEMA__.job_state, 'retry'::__SCHEMA__.job_state, 'failed'::__SCHEMA__.job_state])) AND (policy = 'key_strict_fifo'::text));
CREATE INDEX job_common_i9 ON __SCHEMA__.job_common USING btree (name, id) WHERE (blocking AND (state = 'completed'::__SCHEMA__.job_state));
CREATE INDEX job_dep_parent_idx ON __SCHEMA__.job_dependency USING btree (parent_name, parent_id);
CREATE INDEX queue_stats_i1 ON ONLY __SCHEMA__.queue_stats USING btree (name, captured_on DESC) INCLUDE (deferred_count, queued_count, ready_count, active_count, failed_count, total_count);
CREATE INDEX queue_stats_20261123_name_captured_on_deferred_count_queued_idx ON __SCHEMA__.queue_stats_20261123 USING btree (name, captured_on DESC) INCLUDE (deferred_count, queued_count, ready_count, active_count, failed_count, total_count);
CREATE INDEX queue_stats_20261124_name_captured_on_deferred_count_queued_idx ON __SCHEMA__.queue_stats_20261124 USING btree (name, captured_on DESC) INCLUDE (deferred_count, queued_count, ready_count, active_count, failed_count, total_count);
CREATE INDEX warning_i1 ON __SCHEMA__.warning USING btree (created_on DESC);
ALTER INDEX __SCHEMA__.job_pkey ATTACH PARTITION __SCHEMA__.job_common_pkey;
ALTER INDEX __SCHEMA__.queue_stats_i1 ATTACH PARTITION __SCHEMA__.queue_stats_20261123_name_captured_on_deferred_count_queued_idx;
ALTER INDEX __SCHEMA__.queue_stats_pkey ATTACH PARTITION __SCHEMA__.queue_stats_20261123_pkey;
ALTER INDEX __SCHEMA__.queue_stats_i1 ATTACH PARTITION __SCHEMA__.queue_stats_20261124_name_captured_on_deferred_count_queued_idx;
ALTER INDEX __SCHEMA__.queue_stats_pkey ATTACH PARTITION __SCHEMA__.queue_stats_20261124_pkey;
ALTER TABLE ONLY __SCHEMA__.job_common
    ADD CONSTRAINT dlq_fkey FOREIGN KEY (dead_letter) REFERENCES __SCHEMA__.queue(name) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE ONLY __SCHEMA__.job_common
    ADD CONSTRAINT q_fkey FOREIGN KEY (name) REFERENCES __SCHEMA__.queue(name) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE ONLY __SCHEMA__.queue
    ADD CONSTRAINT queue_dead_letter_fkey FOREIGN KEY (dead_letter) REFERENCES __SCHEMA__.queue(name);
ALTER TABLE ONLY __SCHEMA__.schedule
    ADD CONSTRAINT schedule_name_fkey FOREIGN KEY (name) REFERENCES __SCHEMA__.queue(name) ON DELETE CASCADE;
ALTER TABLE ONLY __SCHEMA__.subscription
    ADD CONSTRAINT subscription_name_fkey FOREIGN KEY (name) REFERENCES __SCHEMA__.queue(name) ON DELETE CASCADE;
