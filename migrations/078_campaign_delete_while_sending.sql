-- 078_campaign_delete_while_sending.sql: a campaign that is sending or paused
-- cannot be soft-deleted (issue 12; noticed in session 11).
--
-- The send engine reads a campaign only while it is live (deleted_at is
-- null): a campaign deleted in the middle of its send stopped where it was,
-- its status stayed `sending` (or `paused`) and its queued messages stayed
-- queued for good — nothing would ever finish, cancel or count them, and a
-- restore brought back a campaign no worker sends. Cancelling first is the
-- one way out that settles everything (docs/sending.md), so a delete is
-- refused until then: 409, with the way out in the hint. Draft, scheduled
-- (the scheduler starts only live campaigns), sent, cancelled and failed
-- campaigns delete as before. The rule is the database's, so it holds for
-- /api, /rest/v1 (a PATCH of deleted_at) and psql alike.

create function public.campaigns_no_delete_while_sending() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    raise exception 'a % campaign cannot be deleted', old.status
        using errcode = 'PT409',
              detail = 'Its messages are being sent; a deleted campaign would stop half-way with its messages left queued.',
              hint = 'Cancel the campaign first (POST /api/campaigns/:id/cancel), then delete it.';
end
$$;
revoke all on function public.campaigns_no_delete_while_sending() from public, anon, authenticated;

create trigger no_delete_while_sending before update of deleted_at on public.campaigns
    for each row
    when (old.deleted_at is null and new.deleted_at is not null
          and old.status in ('sending', 'paused'))
    execute function public.campaigns_no_delete_while_sending();
