-- The macros Postfix 3.7 sends by default (milter_connect_macros,
-- milter_mail_macros): the mechanism in the client's own spelling
-- ("plain"), {daemon_name} from milter_macro_daemon_name.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"j", "mx.example.test", "{daemon_name}", "submission",
	                   "{daemon_addr}", "192.0.2.1", "{daemon_port}", "587",
	                   "v", "Postfix 3.7.11", "_", "unknown [2001:db8::25]"},
	                  "unknown", "2001:db8::25")
	mail(conn, "<erin@example.test>",
	     {"i", "4QxYzK1abcz9", "{auth_type}", "plain", "{auth_authen}", "erin@example.test",
	      "{auth_author}", "", "{mail_addr}", "erin@example.test",
	      "{mail_host}", "", "{mail_mailer}", "smtp"},
	     SMFIR_REPLYCODE, "postfix plain")
	check(mt.abort(conn), "abort")
	mail(conn, "<erin@example.test>",
	     {"i", "4QxYzK1abcza", "{auth_type}", "oauthbearer", "{auth_authen}", "erin@example.test",
	      "{auth_author}", "", "{mail_addr}", "erin@example.test",
	      "{mail_host}", "", "{mail_mailer}", "smtp"},
	     SMFIR_ACCEPT, "postfix oauthbearer")
	mt.disconnect(conn)
end)
