-- Source tables for the spec's example pipelines (tests/e2e/spec_fixtures.rs),
-- a few rows each, in a database of the test's own.
CREATE TABLE users (id int PRIMARY KEY, name text, email text, updated_at timestamp NOT NULL);
INSERT INTO users SELECT g, 'user ' || g, 'u' || g || '@example.com',
  timestamp '2024-01-01' + g * interval '17 minutes' FROM generate_series(1, 300) g;
CREATE TABLE orders (id bigint PRIMARY KEY, user_id int, order_date timestamp, amount numeric(12,2),
  discount numeric(12,2), updated_at timestamp);
INSERT INTO orders SELECT g, g % 120, timestamp '2024-01-01' + g * interval '5 hours', g * 1.5,
  g % 7, timestamp '2024-01-01' + g * interval '5 hours' + interval '10 minutes'
  FROM generate_series(1, 400) g;
CREATE TABLE app_users (user_id int PRIMARY KEY, name text, email text, last_login timestamp);
INSERT INTO app_users SELECT g, 'user ' || g, 'u' || g || '@example.com',
  timestamp '2024-03-01' + g * interval '1 hour' FROM generate_series(1, 250) g;
CREATE TABLE products (product_id bigint PRIMARY KEY, name text, price numeric(10,2),
  category varchar(30), created_at timestamptz, created_by text, last_viewed_at timestamp,
  view_count integer);
INSERT INTO products SELECT g, 'product ' || g, g * 0.5, 'c' || (g % 9),
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 day', 'loader',
  timestamp '2024-06-01' + g * interval '1 minute', g % 50 FROM generate_series(1, 200) g;
