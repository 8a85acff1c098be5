-- Two messages on one connection are decided one by one: the first (PLAIN)
-- is refused, the second (XOAUTH2) accepted, the third (PLAIN again) refused.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"{daemon_name}", "submission"})
	mail(conn, "<alice@example.test>",
	     {"i", "TWO001", "{auth_type}", "PLAIN", "{auth_authen}", "alice@example.test"},
	     SMFIR_REPLYCODE, "first message")
	check(mt.abort(conn), "abort")
	mail(conn, "<alice@example.test>",
	     {"i", "TWO002", "{auth_type}", "XOAUTH2", "{auth_authen}", "alice@example.test"},
	     SMFIR_ACCEPT, "second message")
	check(mt.abort(conn), "abort")
	mail(conn, "<alice@example.test>",
	     {"i", "TWO003", "{auth_type}", "PLAIN", "{auth_authen}", "alice@example.test"},
	     SMFIR_REPLYCODE, "third message")
	mt.disconnect(conn)
end)
