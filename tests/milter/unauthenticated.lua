-- No {auth_type}: not an authenticated submission; saslgate has no opinion
-- and the milter continues.
dofile(dir .. "/common.lua")
run(function()
	local conn = open({"{daemon_name}", "mx"})
	mail(conn, "<someone@elsewhere.test>", {"i", "UNA001"}, SMFIR_CONTINUE, "no auth")
	mt.disconnect(conn)
end)
