-- The bug page and the Bugzilla extension list a bug's requests; intake asks whether a bug is busy.
CREATE INDEX requests_bug ON requests (source, bug);
