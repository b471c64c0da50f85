"""Who may see and change what: principals, credentials and the open levels of datasets.

* :mod:`geoplatform.access.policy`: a principal (a user's roles per department)
  and what it may read and write of a catalog entry (public, shared with named
  departments, restricted to its owner);
* :mod:`geoplatform.access.credentials`: API keys (kept as hashes in an access
  file) and bearer tokens (JWT), turned into principals;
* :mod:`geoplatform.access.audit`: the log of writes and of reads of restricted data.
"""
