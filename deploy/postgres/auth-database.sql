-- Run once by the postgres image when its volume is empty (docker-compose.yml mounts this
-- folder at /docker-entrypoint-initdb.d): the database of MLflow's basic-auth app, apart from
-- the tracking store's. Its name is the one in deploy/mlflow/basic_auth.ini.
CREATE DATABASE mlflow_auth;
