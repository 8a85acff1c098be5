-- The policy is report-only (set up by the test): a legacy submission is
-- accepted; the test then finds a would-block decision in activity.db.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"{daemon_name}", "submission"})
	mail(conn, "<carol@example.test>",
	     {"i", "REP001", "{auth_type}", "LOGIN", "{auth_authen}", "carol@example.test"},
	     SMFIR_ACCEPT, "LOGIN report-only")
	mt.disconnect(conn)
end)
