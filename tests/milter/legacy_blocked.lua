-- An authenticated submission with a legacy mechanism (PLAIN) is refused at
-- MAIL FROM with a reply code (the text is checked by test_milter_wire.py).
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"{daemon_name}", "submission", "{daemon_port}", "587"})
	mail(conn, "<alice@example.test>",
	     {"i", "LEG001", "{auth_type}", "PLAIN", "{auth_authen}", "alice@example.test"},
	     SMFIR_REPLYCODE, "PLAIN")
	mt.disconnect(conn)
end)
