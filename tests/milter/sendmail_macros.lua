-- The macros Sendmail sends with confMILTER_MACROS_CONNECT / _ENVFROM as in
-- contrib/sendmail/saslgate.mc: {daemon_name} is the DAEMON_OPTIONS Name,
-- {auth_ssf}, {if_addr} and friends come along and must not disturb anything.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"j", "mx.example.test", "{daemon_name}", "MSA",
	                   "{daemon_port}", "587", "{if_addr}", "192.0.2.1",
	                   "{client_addr}", "192.0.2.20", "_", "client.example.test [192.0.2.20]"},
	                  "client.example.test", "192.0.2.20")
	mail(conn, "<dave@example.test>",
	     {"i", "5AB1c2SM001", "{auth_type}", "LOGIN", "{auth_authen}", "dave",
	      "{auth_ssf}", "0", "{auth_author}", "dave",
	      "{mail_mailer}", "local", "{mail_host}", "", "{mail_addr}", "dave"},
	     SMFIR_REPLYCODE, "sendmail LOGIN")
	check(mt.abort(conn), "abort")
	mail(conn, "<dave@example.test>",
	     {"i", "5AB1c2SM002", "{auth_type}", "GSSAPI", "{auth_authen}", "dave@EXAMPLE.TEST",
	      "{auth_ssf}", "56", "{auth_author}", "dave",
	      "{mail_mailer}", "local", "{mail_host}", "", "{mail_addr}", "dave"},
	     SMFIR_ACCEPT, "sendmail GSSAPI")
	mt.disconnect(conn)
end)
