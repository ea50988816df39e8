-- The reader gets exactly what it needs; tests and demos use the admin user.
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pass';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'repl'@'%';
CREATE USER 'admin'@'%' IDENTIFIED BY 'admin-pass';
GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;
