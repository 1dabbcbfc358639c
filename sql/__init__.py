"""DuckDB SQL as files: public views (views/), analyst queries (queries/), data checks (checks/)."""
