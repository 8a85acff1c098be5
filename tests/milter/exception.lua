-- bob@example.test holds an exception (set up by the test): his PLAIN
-- submission passes, alice's is still refused.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"{daemon_name}", "submission"})
	mail(conn, "<bob@example.test>",
	     {"i", "EXC001", "{auth_type}", "PLAIN", "{auth_authen}", "bob@example.test"},
	     SMFIR_ACCEPT, "bob PLAIN")
	mt.disconnect(conn)
	conn = open({"{daemon_name}", "submission"})
	mail(conn, "<alice@example.test>",
	     {"i", "EXC002", "{auth_type}", "PLAIN", "{auth_authen}", "alice@example.test"},
	     SMFIR_REPLYCODE, "alice PLAIN")
	mt.disconnect(conn)
end)
