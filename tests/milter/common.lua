-- Shared helpers for the saslgate-milter miltertest scenarios.
-- Globals from the command line: sock (unix:/path), dir (this directory).
-- Loaded with dofile(dir .. "/common.lua").

local names = {}
names[SMFIR_ACCEPT] = "ACCEPT"
names[SMFIR_CONTINUE] = "CONTINUE"
names[SMFIR_REJECT] = "REJECT"
names[SMFIR_TEMPFAIL] = "TEMPFAIL"
names[SMFIR_REPLYCODE] = "REPLYCODE"

local function name(r)
	return names[r] or string.format("%q", tostring(r))
end

-- Fails unless the last reply on conn is want.
function expect(conn, want, step)
	local got = mt.getreply(conn)
	if got ~= want then
		error(string.format("%s: expected %s, got %s", step, name(want), name(got)), 2)
	end
end

-- Fails when a miltertest call returned an error string.
function check(result, step)
	if result ~= nil then
		error(string.format("%s: %s", step, tostring(result)), 2)
	end
end

-- Connects and negotiates. The filter switches HELO off: the scripts
-- never drive a step it declined.
function open(connect_macros, host, ip)
	local conn = mt.connect(sock, 50, 0.1)
	if conn == nil then
		error("cannot connect to " .. tostring(sock))
	end
	if mt.test_option(conn, SMFIP_NOCONNECT) then
		error("the filter must not switch off CONNECT")
	end
	if not mt.test_option(conn, SMFIP_NOHELO) then
		error("the filter should switch off HELO")
	end
	if connect_macros ~= nil then
		mt.macro(conn, SMFIC_CONNECT, table.unpack(connect_macros))
	end
	check(mt.conninfo(conn, host or "client.example.test", ip or "192.0.2.10"), "conninfo")
	expect(conn, SMFIR_CONTINUE, "conninfo")
	return conn
end

-- Sends MAIL FROM with the given macros and checks the reply.
function mail(conn, sender, macros, want, step)
	mt.macro(conn, SMFIC_MAIL, table.unpack(macros))
	check(mt.mailfrom(conn, sender), step .. ": mailfrom")
	expect(conn, want, step)
end

-- Runs body; on failure prints the Lua error (miltertest would not) and exits 1.
function run(body)
	local ok, err = xpcall(body, debug.traceback)
	if not ok then
		io.stderr:write("FAIL: ", tostring(err), "\n")
		os.exit(1)
	end
	print("ok")
end
