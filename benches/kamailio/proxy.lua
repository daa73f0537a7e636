-- Strowger bench: KEMI Lua routing for proxy-lua.cfg. Same policy as
-- proxy-native.cfg: stateful proxy, record-route, 90 -> 91 prefix rewrite of
-- the Request-URI user, forward initial INVITEs to the SIPp UAS ($BENCH_UAS).

local UAS = os.getenv("BENCH_UAS")

local function relay()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	return KSR.x.exit()
end

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return KSR.x.exit()
	end

	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			return relay()
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then
				relay()
			end
			return KSR.x.exit()
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return KSR.x.exit()
	end

	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			relay()
		end
		return KSR.x.exit()
	end

	if KSR.tm.t_newtran() < 0 then
		KSR.sl.sl_reply_error()
		return KSR.x.exit()
	end

	if KSR.is_INVITE() then
		KSR.rr.record_route()
		local ruser = KSR.pv.get("$rU")
		if ruser ~= nil and string.sub(ruser, 1, 2) == "90" then
			KSR.pv.sets("$rU", "91" .. string.sub(ruser, 3))
		end
		KSR.pv.sets("$du", UAS)
		return relay()
	end

	KSR.tm.t_reply(405, "Method Not Allowed")
	return KSR.x.exit()
end
