-- XOAUTH2 and OAUTHBEARER are modern: the message is accepted outright.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"{daemon_name}", "submission"})
	mail(conn, "<alice@example.test>",
	     {"i", "MOD001", "{auth_type}", "XOAUTH2", "{auth_authen}", "alice@example.test"},
	     SMFIR_ACCEPT, "XOAUTH2")
	mt.disconnect(conn)
	conn = open({"{daemon_name}", "submission"})
	mail(conn, "<alice@example.test>",
	     {"i", "MOD002", "{auth_type}", "OAUTHBEARER", "{auth_authen}", "alice@example.test"},
	     SMFIR_ACCEPT, "OAUTHBEARER")
	mt.disconnect(conn)
end)
