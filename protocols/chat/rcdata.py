"""What a new Rocket.Chat server ships with: its permission ids and their default roles, its roles, its settings.

Data only (the store seeds a new database from it). Permission ids and default roles follow Rocket.Chat's
own table; `bulk-create-c` is the reference API's and kept for it.
"""

from __future__ import annotations

from typing import Any

ROCKETCHAT_VERSION = "8.5.0"  # the Rocket.Chat release whose REST and realtime API the chat follows

# "permission role,role,..." ("-" = no role); admin is listed where Rocket.Chat lists it.
_PERMISSIONS = """
access-permissions admin
access-marketplace admin,user
access-setting-permissions admin
add-oauth-service admin
add-user-to-joined-room admin,owner,moderator
add-user-to-any-c-room admin
add-user-to-any-p-room -
kick-user-from-any-c-room admin
kick-user-from-any-p-room -
api-bypass-rate-limit admin,bot,app
archive-room admin,owner
assign-admin-role admin
assign-roles admin
ban-user admin,owner,moderator
bulk-register-user admin
bulk-create-c admin
change-livechat-room-visitor admin,livechat-manager,livechat-agent
create-c admin,user,bot,app
create-d admin,user,bot,app
create-p admin,user,bot,app
create-personal-access-tokens admin,user
create-user admin
clean-channel-history admin
delete-c admin,owner
delete-d admin
delete-message admin,owner,moderator
delete-own-message admin,user
delete-p admin,owner
delete-user admin
edit-message admin,owner,moderator
edit-other-user-active-status admin
edit-other-user-info admin
edit-other-user-password admin
edit-other-user-avatar admin
edit-other-user-e2ee admin
edit-other-user-totp admin
edit-privileged-setting admin
edit-room admin,owner,moderator
edit-room-avatar admin,owner,moderator
edit-room-retention-policy admin
force-delete-message admin,owner
join-without-join-code admin,bot,app
leave-c admin,user,bot,anonymous,app
leave-p admin,user,bot,anonymous,app
logout-other-user admin
manage-assets admin
manage-email-inbox admin
manage-emoji admin
manage-user-status admin
manage-outgoing-integrations admin
manage-incoming-integrations admin
manage-own-outgoing-integrations admin
manage-own-incoming-integrations admin
manage-oauth-apps admin
manage-selected-settings admin
mention-all admin,owner,moderator,user
mention-here admin,owner,moderator,user
mute-user admin,owner,moderator
remove-user admin,owner,moderator
run-import admin
run-migration admin
set-moderator admin,owner
set-owner admin,owner
send-many-messages admin,bot,app
set-leader admin,owner
start-discussion admin,user,guest,app
start-discussion-other-user admin,user,owner,app
unarchive-room admin
view-c-room admin,user,bot,app,anonymous
user-generate-access-token admin
view-d-room admin,user,bot,app,guest
view-device-management admin
view-engagement-dashboard admin
view-full-other-user-info admin
view-joined-room guest,bot,app,anonymous
view-join-code admin
view-logs admin
view-other-user-channels admin
view-p-room admin,user,anonymous,guest
view-privileged-setting admin
view-room-administration admin
view-statistics admin
view-user-administration admin
preview-c-room admin,user,anonymous
view-outside-room admin,owner,moderator,user
view-broadcast-member-list admin,owner,moderator
call-management admin,owner,moderator,user
create-invite-links admin,owner,moderator
view-l-room livechat-manager,livechat-monitor,livechat-agent,admin
create-livechat-contact livechat-manager,livechat-monitor,livechat-agent,admin
update-livechat-contact livechat-manager,livechat-monitor,livechat-agent,admin
view-livechat-contact livechat-manager,livechat-monitor,livechat-agent,admin
view-livechat-contact-history livechat-manager,livechat-monitor,livechat-agent,admin
view-livechat-manager livechat-manager,livechat-monitor,admin
view-omnichannel-contact-center livechat-manager,livechat-agent,livechat-monitor,admin
edit-omnichannel-contact livechat-manager,livechat-agent,admin
view-livechat-rooms livechat-manager,livechat-monitor,admin
close-livechat-room livechat-manager,livechat-monitor,livechat-agent,admin
close-others-livechat-room livechat-manager,livechat-monitor,admin
on-hold-livechat-room livechat-manager,livechat-monitor,livechat-agent,admin
on-hold-others-livechat-room livechat-manager,livechat-monitor,admin
save-others-livechat-room-info livechat-manager,livechat-monitor,admin
remove-closed-livechat-rooms livechat-manager,livechat-monitor,admin
view-livechat-analytics livechat-manager,livechat-monitor,admin
view-livechat-queue livechat-manager,livechat-monitor,livechat-agent,admin
transfer-livechat-guest livechat-manager,livechat-monitor,admin
manage-livechat-managers livechat-manager,admin
manage-livechat-agents livechat-manager,livechat-monitor,admin
manage-livechat-departments livechat-manager,livechat-monitor,admin
view-livechat-departments livechat-manager,livechat-monitor,admin
add-livechat-department-agents livechat-manager,livechat-monitor,admin
view-livechat-current-chats livechat-manager,livechat-monitor,admin
view-livechat-real-time-monitoring livechat-manager,livechat-monitor,admin
view-livechat-triggers livechat-manager,admin
view-livechat-customfields livechat-manager,admin
view-livechat-installation livechat-manager,admin
view-livechat-appearance livechat-manager,admin
view-livechat-webhooks livechat-manager,admin
view-livechat-business-hours livechat-manager,livechat-monitor,admin
view-livechat-room-closed-same-department livechat-manager,livechat-monitor,admin
view-livechat-room-closed-by-another-agent livechat-manager,livechat-monitor,admin
view-livechat-room-customfields livechat-manager,livechat-monitor,livechat-agent,admin
edit-livechat-room-customfields livechat-manager,livechat-monitor,livechat-agent,admin
send-omnichannel-chat-transcript livechat-manager,admin
mail-messages admin
toggle-room-e2e-encryption owner,admin
message-impersonate bot,app
create-team admin,user
delete-team admin,owner
convert-team admin,owner
edit-team admin,owner
add-team-member admin,owner,moderator
edit-team-member admin,owner,moderator
move-room-to-team admin,owner,moderator
create-team-channel admin,owner,moderator
create-team-group admin,owner,moderator
delete-team-channel admin,owner,moderator
delete-team-group admin,owner,moderator
edit-team-channel admin,owner,moderator
remove-team-channel admin,owner,moderator
view-all-team-channels admin,owner
view-all-teams admin
remove-closed-livechat-room livechat-manager,admin
remove-livechat-department livechat-manager,admin
manage-voip-call-settings livechat-manager,admin
manage-voip-contact-center-settings livechat-manager,admin
manage-agent-extension-association admin
view-agent-extension-association livechat-manager,admin,livechat-agent
inbound-voip-calls livechat-agent
manage-voip-extensions admin
view-user-voip-extension admin,user
view-voip-extension-details admin,user
manage-apps admin
post-readonly admin,owner,moderator
set-readonly admin,owner
set-react-when-readonly admin,owner
manage-cloud admin
manage-sounds admin
access-mailer admin
pin-message owner,moderator,admin
mobile-upload-file user,admin
send-mail admin
view-federation-data admin
add-all-to-room admin
get-server-info admin
register-on-cloud admin
test-admin-options admin
test-push-notifications admin,user
sync-auth-services-users admin
restart-server admin
remove-slackbridge-links admin
view-import-operations admin
clear-oembed-cache admin
videoconf-ring-users admin,owner,moderator,user
view-moderation-console admin
manage-moderation-actions admin
bypass-time-limit-edit-and-delete bot,app
"""
PERMISSIONS: dict[str, tuple[str, ...]] = {
    line.split()[0]: tuple(r for r in line.split()[1].split(",") if r != "-")
    for line in _PERMISSIONS.strip().splitlines()
}

# role -> (scope, description); all protected (cannot be deleted).
ROLES: dict[str, tuple[str, str]] = {
    "admin": ("Users", "Administrator"),
    "moderator": ("Subscriptions", "Moderator"),
    "leader": ("Subscriptions", "Leader"),
    "owner": ("Subscriptions", "Owner"),
    "user": ("Users", ""),
    "bot": ("Users", ""),
    "app": ("Users", ""),
    "guest": ("Users", ""),
    "anonymous": ("Users", ""),
    "livechat-agent": ("Users", "Livechat Agent"),
    "livechat-manager": ("Users", "Livechat Manager"),
    "livechat-monitor": ("Users", "Livechat Monitor"),
}
ROOM_ROLES = ("owner", "moderator", "leader")

# setting id -> (default value, type, public, group)
SETTINGS: dict[str, tuple[Any, str, bool, str]] = {
    "Site_Name": ("Rocket.Chat", "string", True, "General"),
    "Site_Url": ("http://localhost:3000", "string", True, "General"),
    "Language": ("en", "language", True, "General"),
    "Show_Setup_Wizard": ("completed", "select", True, "General"),
    "Accounts_RegistrationForm": ("Public", "select", True, "Accounts"),
    "Accounts_AllowUserAvatarChange": (True, "boolean", True, "Accounts"),
    "Accounts_AllowRealNameChange": (True, "boolean", True, "Accounts"),
    "Accounts_AllowUsernameChange": (True, "boolean", True, "Accounts"),
    "Accounts_AllowEmailChange": (True, "boolean", True, "Accounts"),
    "Accounts_AllowPasswordChange": (True, "boolean", True, "Accounts"),
    "Accounts_AllowUserStatusMessageChange": (True, "boolean", True, "Accounts"),
    "Accounts_AllowDeleteOwnAccount": (False, "boolean", True, "Accounts"),
    "Accounts_Default_User_Preferences_useEmojis": (True, "boolean", True, "Accounts"),
    "API_Enable_Rate_Limiter": (False, "boolean", False, "General"),
    "API_Allow_Infinite_Count": (True, "boolean", False, "General"),
    "API_Default_Count": (50, "int", False, "General"),
    "API_Upper_Count_Limit": (100, "int", False, "General"),
    "API_Enable_Direct_Message_History_EndPoint": (False, "boolean", False, "General"),
    "API_Enable_Shields": (True, "boolean", False, "General"),
    "Message_AllowEditing": (True, "boolean", True, "Message"),
    "Message_AllowEditing_BlockEditInMinutes": (0, "int", True, "Message"),
    "Message_AllowDeleting": (True, "boolean", True, "Message"),
    "Message_AllowDeleting_BlockDeleteInMinutes": (0, "int", True, "Message"),
    "Message_AllowPinning": (True, "boolean", True, "Message"),
    "Message_AllowStarring": (True, "boolean", True, "Message"),
    "Message_MaxAllowedSize": (5000, "int", True, "Message"),
    "Message_Read_Receipt_Enabled": (False, "boolean", True, "Message"),
    "Message_Read_Receipt_Store_Users": (False, "boolean", True, "Message"),
    "Threads_enabled": (True, "boolean", True, "Threads"),
    "Discussion_enabled": (True, "boolean", True, "Discussion"),
    "E2E_Enable": (False, "boolean", True, "E2E Encryption"),
    "FileUpload_Enabled": (True, "boolean", True, "FileUpload"),
    "FileUpload_MaxFileSize": (104857600, "int", True, "FileUpload"),
    "Livechat_enabled": (False, "boolean", True, "Omnichannel"),
    "Livechat_accept_chats_with_no_agents": (False, "boolean", False, "Omnichannel"),
    "Livechat_Routing_Method": ("Auto_Selection", "select", False, "Omnichannel"),
    "UI_Use_Real_Name": (False, "boolean", True, "Layout"),
    "Favorite_Rooms": (True, "boolean", True, "Accounts"),
    "Invitation_Subject": ("You have been invited to Rocket.Chat", "string", False, "Email"),
}
