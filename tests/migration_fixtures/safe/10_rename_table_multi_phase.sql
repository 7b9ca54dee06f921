-- A new table beside the old one; the app writes both until reads move.
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text);
CREATE INDEX customers_email ON customers (email);
