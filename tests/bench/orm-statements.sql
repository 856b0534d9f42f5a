-- What ORMs send, one statement per line, for bench-decisions. Lines starting with `--`
-- and blank lines are skipped. Every statement must be allowed by policy-20-rules.yaml
-- (bench-decisions checks). Values are `$n` parameters where the driver binds them and
-- inlined where it interpolates them client-side (psycopg2, some Rails paths).
-- Django (psycopg)
SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."email", "auth_user"."is_active" FROM "auth_user" WHERE "auth_user"."id" = 42 LIMIT 21
SELECT "django_session"."session_key", "django_session"."session_data", "django_session"."expire_date" FROM "django_session" WHERE ("django_session"."expire_date" > $1 AND "django_session"."session_key" = $2) LIMIT 21
SELECT COUNT(*) AS "__count" FROM "blog_post" WHERE ("blog_post"."published" AND "blog_post"."author_id" = $1)
SELECT "blog_post"."id", "blog_post"."title", "blog_post"."slug", "blog_post"."created_at", "auth_user"."id", "auth_user"."username" FROM "blog_post" INNER JOIN "auth_user" ON ("blog_post"."author_id" = "auth_user"."id") WHERE "blog_post"."published" ORDER BY "blog_post"."created_at" DESC LIMIT 20 OFFSET 40
INSERT INTO "blog_post" ("title", "slug", "body", "author_id", "published", "created_at") VALUES ($1, $2, $3, $4, $5, $6) RETURNING "blog_post"."id"
UPDATE "auth_user" SET "last_login" = $1 WHERE "auth_user"."id" = $2
DELETE FROM "django_session" WHERE "django_session"."session_key" IN ($1)
SAVEPOINT "s139872341_x1"
RELEASE SAVEPOINT "s139872341_x1"
ROLLBACK TO SAVEPOINT "s139872341_x1"
SELECT "django_migrations"."id", "django_migrations"."app", "django_migrations"."name", "django_migrations"."applied" FROM "django_migrations"
SELECT c.relname, CASE WHEN c.relispartition THEN 'p' WHEN c.relkind IN ('m', 'v') THEN 'v' ELSE 't' END, obj_description(c.oid, 'pg_class') FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('f', 'm', 'p', 'r', 'v') AND n.nspname NOT IN ('pg_catalog', 'pg_toast') AND pg_catalog.pg_table_is_visible(c.oid)
-- Rails (ActiveRecord, pg gem with prepared statements)
SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2
SELECT 1 AS one FROM "users" WHERE "users"."email" = $1 LIMIT $2
SELECT "posts".* FROM "posts" WHERE "posts"."user_id" IN ($1, $2, $3) ORDER BY "posts"."created_at" DESC
SELECT "comments".* FROM "comments" INNER JOIN "posts" ON "comments"."post_id" = "posts"."id" WHERE "posts"."user_id" = $1 AND "comments"."approved" = $2 ORDER BY "comments"."id" ASC LIMIT $3 OFFSET $4
INSERT INTO "comments" ("body", "post_id", "user_id", "created_at", "updated_at") VALUES ($1, $2, $3, $4, $5) RETURNING "id"
UPDATE "posts" SET "comments_count" = COALESCE("comments_count", 0) + 1 WHERE "posts"."id" = $1
UPDATE "users" SET "sign_in_count" = $1, "current_sign_in_at" = $2, "updated_at" = $3 WHERE "users"."id" = $4
DELETE FROM "comments" WHERE "comments"."id" = $1
SELECT "schema_migrations"."version" FROM "schema_migrations" ORDER BY "schema_migrations"."version" ASC
SELECT "ar_internal_metadata"."value" FROM "ar_internal_metadata" WHERE "ar_internal_metadata"."key" = $1 LIMIT $2
SET client_min_messages TO 'warning'
SET standard_conforming_strings = on
SET intervalstyle = iso_8601
SET SESSION timezone TO 'UTC'
SELECT t.oid, t.typname, t.typelem, t.typdelim, t.typinput, r.rngsubtype, t.typtype, t.typbasetype FROM pg_type as t LEFT JOIN pg_range as r ON oid = rngtypid WHERE t.typname IN ('int2', 'int4', 'int8', 'oid', 'float4', 'float8', 'numeric', 'bool', 'timestamp', 'timestamptz')
SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), a.attnotnull, a.atttypid, a.atttypmod, c.collname, col_description(a.attrelid, a.attnum) AS comment FROM pg_attribute a LEFT JOIN pg_attrdef d ON a.attrelid = d.adrelid AND a.attnum = d.adnum LEFT JOIN pg_type t ON a.atttypid = t.oid LEFT JOIN pg_collation c ON a.attcollation = c.oid AND a.attcollation <> t.typcollation WHERE a.attrelid = '"users"'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
-- Hibernate 6 (pgJDBC)
select u1_0.id,u1_0.email,u1_0.display_name,u1_0.created_at from users u1_0 where u1_0.id=$1
select o1_0.id,o1_0.status,o1_0.total_cents,o1_0.created_at from orders o1_0 join users u1_0 on u1_0.id=o1_0.user_id where u1_0.email=$1 order by o1_0.created_at desc offset $2 rows fetch first $3 rows only
select nextval('order_items_seq')
insert into order_items (order_id,product_id,quantity,unit_price_cents,id) values ($1,$2,$3,$4,$5)
update orders set status=$1,total_cents=$2,version=$3 where id=$4 and version=$5
delete from cart_items where cart_id=$1
select p1_0.id,p1_0.name,p1_0.price_cents,c1_0.id,c1_0.name from products p1_0 left join categories c1_0 on c1_0.id=p1_0.category_id where p1_0.id in ($1,$2,$3,$4,$5)
SET extra_float_digits = 3
SET application_name = 'PostgreSQL JDBC Driver'
select current_schema()
SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as nspname from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r using ( nspname ) ) as sp ON sp.nspoid = typnamespace WHERE pg_type.oid = $1 ORDER BY sp.r, pg_type.oid DESC LIMIT 1
-- SQLAlchemy 2 (psycopg 3 / asyncpg)
select pg_catalog.version()
show standard_conforming_strings
show transaction isolation level
SELECT users.id, users.name, users.fullname FROM users WHERE users.name = $1::VARCHAR LIMIT $2::INTEGER OFFSET $3::INTEGER
SELECT count(*) AS count_1 FROM (SELECT addresses.id AS addresses_id, addresses.email_address AS addresses_email_address FROM addresses WHERE addresses.user_id = $1::INTEGER) AS anon_1
INSERT INTO addresses (user_id, email_address) VALUES ($1::INTEGER, $2::VARCHAR) RETURNING addresses.id
SELECT addresses.user_id AS addresses_user_id, addresses.id AS addresses_id, addresses.email_address AS addresses_email_address FROM addresses WHERE addresses.user_id IN ($1::INTEGER, $2::INTEGER, $3::INTEGER)
SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relname = $1::VARCHAR AND pg_catalog.pg_class.relkind = ANY (ARRAY[$2::VARCHAR, $3::VARCHAR, $4::VARCHAR, $5::VARCHAR, $6::VARCHAR]) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != $7::VARCHAR
-- Prisma
SELECT "public"."User"."id", "public"."User"."email", "public"."User"."name" FROM "public"."User" WHERE ("public"."User"."email" = $1 AND 1=1) LIMIT $2 OFFSET $3
SELECT "public"."Post"."id", "public"."Post"."title", "public"."Post"."published", "public"."Post"."authorId" FROM "public"."Post" WHERE "public"."Post"."authorId" IN ($1,$2,$3) OFFSET $4
INSERT INTO "public"."Post" ("title","content","published","authorId") VALUES ($1,$2,$3,$4) RETURNING "public"."Post"."id", "public"."Post"."title", "public"."Post"."published", "public"."Post"."authorId"
UPDATE "public"."User" SET "name" = $1 WHERE ("public"."User"."id" = $2 AND 1=1) RETURNING "public"."User"."id", "public"."User"."email", "public"."User"."name"
DELETE FROM "public"."Session" WHERE "public"."Session"."expires" < $1
SELECT COUNT(*) AS "_count._all" FROM (SELECT "public"."Post"."id" FROM "public"."Post" WHERE "public"."Post"."published" = $1 OFFSET $2) AS "sub"
-- Ecto, job queues, upserts, billing reads
SELECT u0."id", u0."email", u0."inserted_at" FROM "users" AS u0 WHERE (u0."id" = ANY($1))
SELECT TRUE FROM "users" AS u0 WHERE (u0."email" = $1) LIMIT 1
SELECT "jobs"."id", "jobs"."queue", "jobs"."payload" FROM "jobs" WHERE "jobs"."queue" = $1 AND "jobs"."run_at" <= $2 AND "jobs"."locked_at" IS NULL ORDER BY "jobs"."priority" DESC, "jobs"."run_at" ASC LIMIT $3 FOR UPDATE SKIP LOCKED
UPDATE "jobs" SET "locked_at" = now(), "attempts" = "attempts" + 1 WHERE "jobs"."id" = $1 RETURNING "jobs"."id"
INSERT INTO "carts" ("user_id", "updated_at") VALUES ($1, $2) ON CONFLICT ("user_id") DO UPDATE SET "updated_at" = EXCLUDED."updated_at" RETURNING "id"
SELECT "orders"."status", COUNT(*) AS "count" FROM "orders" WHERE "orders"."created_at" >= $1 GROUP BY "orders"."status" ORDER BY "orders"."status"
SELECT "payments"."id", "payments"."amount_cents", "payments"."status", "payments"."card_last4" FROM "billing"."payments" WHERE "payments"."order_id" = $1
INSERT INTO "audit_log" ("actor_id", "action", "target", "created_at") VALUES ($1, $2, $3, now())
-- Transactions and session settings
BEGIN
BEGIN ISOLATION LEVEL REPEATABLE READ
COMMIT
ROLLBACK
SET LOCAL statement_timeout = '5s'
SET search_path TO "$user", public
SHOW server_version_num
SELECT 1
