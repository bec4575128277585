-- Run once by the postgres image's entrypoint, on the first start with an empty data volume
-- (/docker-entrypoint-initdb.d), as POSTGRES_USER: one database per app, each owned by that user.
-- Each app creates its own tables at start (alembic migrations), so nothing else is needed here.
-- Keep the list in step with the <PREFIX>DATABASE_URL of each app in docker-compose.yml
-- (tests/test_compose.py checks it).
CREATE DATABASE gateway;
CREATE DATABASE catalog;
CREATE DATABASE orders;
CREATE DATABASE notify;
