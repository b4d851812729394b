"""Data: benchmark class tables, raw ScanNet reading, caches, transforms and collation."""
